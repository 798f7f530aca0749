{{- range $i, $v := .list }}
{{- if eq $v "b" }}{{ continue }}{{ end }}
{{- $v }}
{{- end }}
{{ range $i, $v := .list }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $v }}{{ end }}
{{ range .ports }}{{ range $.list }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}|{{ end }}
