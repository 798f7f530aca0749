{{ with .name }}{{ .x }}{{ end }}
