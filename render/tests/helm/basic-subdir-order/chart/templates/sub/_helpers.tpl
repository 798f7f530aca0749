{{- define "order.x" }}x{{ end }}
