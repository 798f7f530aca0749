{{ .Caps.Greet "x" }}
