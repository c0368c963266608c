// A NestJS app as `nest build` emits it (CommonJS, decorators applied by the
// compiler's helper), with no graft import:
//
//   nest build && graft start dist/main.js -w 2
//
// Here the compiled form is written by hand so the example runs without a
// build step: `graft start examples/nestjs/main.cjs -w 2`.
require('reflect-metadata');
const { Controller, Get, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');

const startedAt = new Date().toISOString();

class AppController {
  hello() {
    return { pid: process.pid, generation: process.env.GRAFT_GENERATION, startedAt, framework: 'nestjs' };
  }
}
Reflect.decorate([Get()], AppController.prototype, 'hello', Object.getOwnPropertyDescriptor(AppController.prototype, 'hello'));
Reflect.decorate([Controller()], AppController);

class AppModule {}
Reflect.decorate([Module({ controllers: [AppController] })], AppModule);

async function bootstrap() {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  // Nest's own shutdown hooks run on SIGTERM, which graft sends when a worker drains.
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000));
}
bootstrap();
