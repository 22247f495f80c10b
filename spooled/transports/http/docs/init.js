// The served OpenAPI document in Swagger UI (vendored: nothing is fetched from anywhere but this server).
// "Try it out" sends requests to this same server; "Authorize" takes an API key or access token (bearer).
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,            // no badge from validator.swagger.io
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
