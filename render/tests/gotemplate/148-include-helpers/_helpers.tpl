{{/* Expand the name of the chart. */}}
{{- define "chart.name" -}}
{{- if .nameOverride }}{{ .nameOverride }}{{ else }}{{ .name }}{{ end }}
{{- end }}

{{- define "chart.fullname" -}}
{{- if .fullnameOverride }}
{{- .fullnameOverride }}
{{- else }}
{{- $name := include "chart.name" . }}
{{- if eq $name .release }}
{{- .release }}
{{- else }}
{{- printf "%s-%s" .release $name }}
{{- end }}
{{- end }}
{{- end }}

{{- define "chart.labels" -}}
app.kubernetes.io/name: {{ include "chart.name" . }}
app.kubernetes.io/instance: {{ .release }}
{{- range $k, $v := .labels }}
{{ $k }}: {{ $v | printf "%q" }}
{{- end }}
{{- end }}
