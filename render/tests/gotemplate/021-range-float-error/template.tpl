{{ range .replicas }}{{ . }}{{ end }}
