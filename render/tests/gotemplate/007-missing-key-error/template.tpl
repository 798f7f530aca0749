a: {{ .name }}
b: {{ .nope }}
