{{ len }}
