{{- range $name, $svc := .services }}
{{ $name }}:
{{- with $svc.ports }}
{{- range . }} {{ .port }}/{{ if .protocol }}{{ .protocol }}{{ else }}TCP{{ end }}{{ end }}
{{- else }} no ports{{ end }}
{{- end }}
