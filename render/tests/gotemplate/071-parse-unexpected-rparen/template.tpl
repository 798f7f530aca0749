{{ .name) }}
