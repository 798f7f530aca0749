a {{ end }}
