-- OpenID Connect Core §3.1.2.1: the nonce of an authorization request that asked for an ID
-- token (scope openid), echoed in the ID token when its code is redeemed; NULL otherwise.
ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
