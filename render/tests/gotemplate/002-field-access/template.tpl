name: {{ .name }}
image: {{ .image.repository }}:{{ .image.tag }}
deep: {{ .nested.a.b.c }}
var: {{ $.name }}
