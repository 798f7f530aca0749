{{ .Caps.Greet "x" -1 }}
