{{ .Caps.Name 1 }}
