{{ define "x" }}
  {{ end }}