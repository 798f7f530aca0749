x: {{ .nope.deeper }}
