{{ range $p := .ports }}{{ $p.name.x }}{{ end }}
