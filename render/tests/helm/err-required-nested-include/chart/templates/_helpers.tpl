{{- define "reqinc.host" -}}
{{ required "ingress.host is required when ingress is enabled" .Values.ingress.host }}
{{- end }}
