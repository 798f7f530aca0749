{{ upper 1 }}
