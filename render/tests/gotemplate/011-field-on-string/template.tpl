x: {{ .name.first }}
