{{ .list.x }}
