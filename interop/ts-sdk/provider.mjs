// The MCP client application's side of the OAuth flow, kept in memory: what the SDKs'
// `OAuthClientProvider` asks for. Shared by the interop scripts; the SDK does the protocol.

import { randomBytes } from 'node:crypto';

export class InMemoryProvider {
  /**
   * `clientName` and `redirectUrl` go into the registration; with `clientMetadataUrl` the
   * client offers that Client ID Metadata Document; with `cacheDiscovery` the SDK may keep its
   * discovery results here (2.x uses them across transports).
   */
  constructor({ clientName, redirectUrl, clientMetadataUrl, cacheDiscovery = false }) {
    this.clientName = clientName;
    this.redirect = redirectUrl;
    this.client = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.lastState = undefined;
    this.authorizationUrl = undefined;
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    if (cacheDiscovery) {
      this.discovery = undefined;
      this.discoveryState = () => this.discovery;
      this.saveDiscoveryState = (state) => { this.discovery = state; };
    }
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: this.clientName,
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { this.lastState = randomBytes(16).toString('hex'); return this.lastState; }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}
