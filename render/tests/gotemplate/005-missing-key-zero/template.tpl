a: {{ .nope }}
b: {{ .image.nope }}
c: [{{ print .nope }}]
d: {{ if .nope }}yes{{ else }}no{{ end }}
