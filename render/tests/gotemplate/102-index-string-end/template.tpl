{{ index .s 3 }}
