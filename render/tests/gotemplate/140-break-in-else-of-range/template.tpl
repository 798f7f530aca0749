{{ range .list }}{{ else }}{{ break }}{{ end }}
