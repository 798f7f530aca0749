{{ range .name }}{{ . }}{{ end }}
