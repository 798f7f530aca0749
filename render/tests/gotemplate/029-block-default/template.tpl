{{ block "footer" . }}default footer {{ .name }}{{ end }}
