{{ .name | 3 }}
