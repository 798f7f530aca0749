a: {{ .nope }}
b: {{ .nope.deeper }}
c: [{{ print .nope }}]
