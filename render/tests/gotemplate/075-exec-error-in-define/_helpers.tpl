{{ define "h" }}
line2 {{ index .list 10 }}
{{ end }}