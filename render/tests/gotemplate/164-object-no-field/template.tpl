{{ .Caps.Nope }}
