{{ define "h" }}{{ .name }}{{ end }}
