// The package's CommonJS build, without lib/index.js: that entry also registers
// require() hooks for .hbs files, which a bundle has no use for. Same API.
declare module "handlebars/dist/cjs/handlebars.js" {
  import Handlebars from "handlebars";
  export default Handlebars;
}
