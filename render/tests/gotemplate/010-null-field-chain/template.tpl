x: {{ .nothing.deeper }}
