{{- define "tpldef.helper" -}}
helper-for-{{ .Chart.Name }}
{{- end -}}
