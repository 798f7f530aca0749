{{- define "perr3.name" -}}
{{ (.Chart.Name }}
{{- end }}
