{{- range .ports }}
{{- $port := . }}
{{- range $.list }}
{{ $.name }}-{{ $port.name }}-{{ . }}
{{- end }}
{{- end }}
