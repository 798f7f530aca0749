{{ .replicas | repeat 2 }}
