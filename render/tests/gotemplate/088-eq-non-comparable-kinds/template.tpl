{{ eq .list .labels }}
