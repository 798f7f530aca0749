{{- define "eerr2.port" -}}
{{ .Values.service.port | add 1 }}
{{- end }}
