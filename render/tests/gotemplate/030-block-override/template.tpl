{{ block "footer" . }}default footer{{ end }}
