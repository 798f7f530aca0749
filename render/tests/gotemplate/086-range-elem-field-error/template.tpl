{{ range .list }}{{ .x }}{{ end }}
