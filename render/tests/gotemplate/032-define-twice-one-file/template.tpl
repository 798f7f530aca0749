{{ define "x" }}one{{ end }}{{ define "x" }}two{{ end }}
