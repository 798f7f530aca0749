{{ if true }}{{ break }}{{ end }}
