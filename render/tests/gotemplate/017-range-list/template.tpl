{{- range .list }}[{{ . }}]{{ end }}
{{ range $i, $e := .list }}{{ $i }}={{ $e }} {{ end }}
{{ range $e := .ports }}{{ $e.name }}:{{ $e.port }} {{ end }}
{{ range .emptyList }}x{{ else }}empty{{ end }}
{{ range .nope }}x{{ else }}nothing{{ end }}
{{ range .mixed }}<{{ . }}>{{ end }}
