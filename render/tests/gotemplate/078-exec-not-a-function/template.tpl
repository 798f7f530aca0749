{{ .name 1 }}
