line1
{{ .name
line3
