{{ upper nil }}
