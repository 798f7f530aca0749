{{ index .list 3 }}
