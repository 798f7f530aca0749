{{ if 1 }}{{ define "x" }}{{ end }}{{ end }}
