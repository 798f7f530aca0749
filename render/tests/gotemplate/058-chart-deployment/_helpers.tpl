{{/* The full name. */}}
{{- define "fullname" -}}
{{- if .fullnameOverride -}}
{{ .fullnameOverride }}
{{- else -}}
{{ printf "%s-%s" .name "chart" }}
{{- end -}}
{{- end -}}
