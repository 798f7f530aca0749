{{ index .list "a" }}
