{{ .Caps.Greet 1 2 }}
