{{- range $k, $v := .labels }}
{{ $k }}: {{ $v }}
{{- end }}
{{ range .labels }}{{ . }},{{ end }}
{{ range $k, $v := .nested }}{{ $k }}={{ $v }}{{ end }}
