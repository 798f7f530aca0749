{{ .name | .image }}
